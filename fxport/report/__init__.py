"""Stage 5, report: the result data model, its documents and their renderings."""
