"""What several test modules share: events, answers read as API Gateway would, fault setups."""
