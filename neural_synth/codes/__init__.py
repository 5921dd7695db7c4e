"""Error-correcting codes for the payloads that markers carry (pure NumPy, no JAX).

`ecc`: 4-byte messages <-> 64 raw marker bits (extended BCH with a CRC), decoded
from hard bits or from the recognizer's bit probabilities.
"""
