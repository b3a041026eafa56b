"""Serving: kserve.Model for predict and explain, request and response schemas, XAI, auth."""
