// tests for diff
