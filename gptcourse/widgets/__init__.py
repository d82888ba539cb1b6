"""Interactive explorers for the lessons. Each module keeps its logic in plain functions (tested) and
builds a thin ipywidgets layer on top. Import a module by its full path, e.g.
`from gptcourse.widgets.tokenizer_explorer import tokenizer_explorer`."""
