"""keygate core: API keys for API Gateway, free of Lambda event shapes."""
