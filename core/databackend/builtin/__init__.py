"""Built-in plugins: registered through the same hooks that third-party plugins use."""
