"""What the three demo apps share: settings, the server-side session store, the page layout."""
