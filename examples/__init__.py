"""Sample programs that run behind Switchyard during development and tests."""
