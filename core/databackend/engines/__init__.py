"""Optional engines that run the preprocessing elsewhere than in this process (``ray``)."""
