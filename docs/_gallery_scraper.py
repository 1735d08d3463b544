"""An image scraper of sphinx-gallery for the figures fastsoftmax.plotting returns."""


def returned_figures(block, block_vars, gallery_conf):
    """Images of the figures an example holds in its variables.

    fastsoftmax.plotting returns plain Agg-backed Figures that pyplot does not
    manage (so they never pop up a window), which sphinx-gallery's matplotlib
    scraper cannot see: find them among the example's variables (also in a
    list, tuple or dict), each once, in the order they were made.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = block_vars.setdefault("_fastsoftmax_seen_figures", set())
    found = []
    for value in list(block_vars["example_globals"].values()):
        items = value.values() if isinstance(value, dict) else value
        for item in items if isinstance(value, (list, tuple, dict)) else [value]:
            if isinstance(item, Figure) and id(item) not in seen and item.canvas.manager is None:
                seen.add(id(item))
                found.append(item)
    paths = []
    for fig, path in zip(found, block_vars["image_path_iterator"]):
        fig.savefig(path, dpi=100)
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
