"""spark_core: a plain-Python, in-process graph engine."""

__all__: list[str] = []
