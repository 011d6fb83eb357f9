"""Services: the only code that writes study data. Reads that scope by user live in selectors."""
