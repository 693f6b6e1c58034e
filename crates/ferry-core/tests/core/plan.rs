// tests for plan
