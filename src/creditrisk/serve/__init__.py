"""Online serving: the KServe predictor and transformer, their request protocol, metrics,
prediction log and explanations. The ``serving/`` entrypoints are thin shells over this."""
