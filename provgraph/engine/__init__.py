"""The engine: annotation of a traced network, the backward driver, initialisation, results."""
