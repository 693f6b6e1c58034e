// tests for argo
