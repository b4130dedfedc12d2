"""The PyFlink jobs (their names, scripts and principals: ``runtime.registry``)."""
