"""The job dashboard: one HTML page whose script polls the API with the user's key."""
