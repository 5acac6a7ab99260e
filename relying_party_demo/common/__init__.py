"""What the demo apps share: settings, session store, page layout; Notes' and Wiki's OIDC pages."""
