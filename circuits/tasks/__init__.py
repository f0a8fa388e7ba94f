"""Built-in and user-defined tasks: prompt generators, metrics and ground truths."""
