"""The ccobs proxy: Anthropic and OpenAI APIs relayed to an upstream, instrumented with ccobs."""
