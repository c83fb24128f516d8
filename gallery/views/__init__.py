"""Views, one module per area: accounts, projects, runs, pages (run grids, compare) and media."""
