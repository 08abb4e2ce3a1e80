"""creditrisk pipelines (thin shells over the creditrisk core library)."""
