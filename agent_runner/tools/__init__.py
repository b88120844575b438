"""The agent's tools: sandbox tools (bash, text editor), web server tools, and NanoClaw tools."""
