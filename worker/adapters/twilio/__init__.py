"""Twilio's REST API, as the price importer reads it."""
