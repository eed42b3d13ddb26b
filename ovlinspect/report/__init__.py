"""Reports rendered from the model: JSON, plain text, Prometheus; text safety."""
