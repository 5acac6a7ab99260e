"""Demo apps that show the shared session; they talk to the IdP only over HTTP."""
