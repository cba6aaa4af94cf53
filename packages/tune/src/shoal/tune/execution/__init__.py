"""How trials run: the controller (decisions), the runner (actors and files) and the trial worker."""
