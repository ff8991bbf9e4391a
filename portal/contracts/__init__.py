"""Provider-neutral contracts: messages, tools, requests, responses, structured output and
feature contracts. Nothing here imports the rest of portal, so contracts can be checked in CI
without providers or routing."""
