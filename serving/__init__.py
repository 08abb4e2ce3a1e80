"""creditrisk serving (thin shells over the creditrisk core library)."""
