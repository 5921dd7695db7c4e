"""Pure image ops used inside jit: sampling, colour, filters, JPEG, marker rendering."""
