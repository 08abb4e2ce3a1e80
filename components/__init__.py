"""creditrisk components (thin shells over the creditrisk core library)."""
