"""Cost- and latency-aware strategies through real Envoy."""


def test_least_latency_moves_traffic_to_the_faster_backend(gateway, providers):
    providers["oa"].default_behaviour = "stall:0.3"
    chosen = []
    for _ in range(10):
        r = gateway.chat("quick")
        assert r.status_code == 200
        # The strategy's choice is the first attempt (a stale pooled connection may still
        # make a request fall back).
        rec = gateway.record(r.headers["x-switchyard-request-id"])
        chosen.append(rec["attempts"][0]["provider"])
    assert chosen[-5:] == ["oa2"] * 5, chosen
    assert rec["strategy"] == "least_latency"


def test_cost_budget_cheap_for_short_prompts_capable_for_long_ones(gateway, providers):
    short = gateway.post("/v1/chat/completions", {"model": "budgeted", "messages": [{"role": "user", "content": "hi"}]})
    assert short.status_code == 200 and short.headers["x-switchyard-resolved-model"] == "llama3.1:8b"
    # ~12.5k tokens: over the $0.001 budget on every model, so the more capable one.
    long = gateway.post("/v1/chat/completions", {"model": "budgeted", "messages": [{"role": "user", "content": "x" * 50000}]})
    assert long.status_code == 200 and long.headers["x-switchyard-resolved-model"] == "gpt-4o"
    assert gateway.record(long.headers["x-switchyard-request-id"])["strategy"] == "cost"


def test_intelligent_routes_by_prompt_complexity(gateway):
    simple = gateway.post("/v1/chat/completions", {"model": "smart", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert simple.status_code == 200 and simple.headers["x-switchyard-resolved-model"] == "llama3.1:8b"
    hard = gateway.post("/v1/chat/completions", {"model": "smart", "messages": [{"role": "user", "content":
        "Design a distributed rate limiter for a multi-region API gateway. Analyze consistency trade-offs, failure modes and how you would test it."}]})
    assert hard.status_code == 200 and hard.headers["x-switchyard-resolved-model"] == "gpt-4o"
    rec = gateway.record(hard.headers["x-switchyard-request-id"])
    assert rec["strategy"] == "intelligent" and rec["reason"].startswith("complexity")
