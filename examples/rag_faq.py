"""RAG: a tiny FAQ indexed with embeddings, injected under a token budget, cited back.

Runs offline on the simulated vendor (its embeddings are deterministic character-trigram
vectors): `python examples/rag_faq.py`.
"""

from __future__ import annotations

import portal
from portal.rag import VectorIndex

CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {"sim": {"kind": "sim", "options": {"seed": 5, "time_scale": 0}}},
    "features": {
        "faq.embed": {"primary": "sim:sim-embed"},
        "faq.answer": {"primary": "sim:sim-small", "rag": {"k": 2, "max_context_tokens": 300}},
    },
}

FAQ = [
    {
        "id": "shipping",
        "text": "We ship to Canada, Mexico and the US in 3 to 5 days.",
        "source": "faq.md#shipping",
    },
    {
        "id": "returns",
        "text": "Returns are free within 30 days of delivery.",
        "source": "faq.md#returns",
    },
    {
        "id": "payment",
        "text": "We accept Visa, Mastercard, PayPal and gift cards.",
        "source": "faq.md#payment",
    },
]


def main() -> None:
    with portal.Client(CONFIG) as client:
        index = VectorIndex.build(client, FAQ, feature="faq.embed")
        for d in index.retrieve("Do you ship to Canada?", 2):
            print(f"retrieved {d.id:<9} score={d.score:.3f}")
        resp = client.chat(
            feature="faq.answer",
            messages=[portal.user("Do you ship to Canada?")],
            retriever=index,
        )
        rag = resp.provider_details["rag"]
        print(
            f"injected {rag['doc_ids']} ({rag['context_tokens']} tokens, "
            f"retrieval {rag['latency_ms']:.1f} ms)"
        )
        print("citations:", resp.citations or "(the simulated model does not cite)")


if __name__ == "__main__":
    main()
