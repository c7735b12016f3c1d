"""The HTTP side: the connexion app, its handlers and its entry points."""
