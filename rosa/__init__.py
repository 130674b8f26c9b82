__version__ = "0.1.0"

def __getattr__(name):
    "`rosa.load` without importing torch at `import rosa`."
    if name == 'load':
        from .apply import load   # a loaded Run has every method (.variants, .attribute ...): it imports their modules itself
        return load
    raise AttributeError(f"module 'rosa' has no attribute {name!r}")
