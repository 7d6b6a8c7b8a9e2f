"""`ringlog gateway`: webhooks of telephony systems in, canonical events on Kafka out.

Each provider route authenticates the request the provider's way (`auth`), turns the body
into canonical events with the provider's pure normalizer (`worker.core.providers`), and
answers 2xx only once Kafka has every event it produced (`delivery`, acks=all): a provider
retries anything else, and a retry yields the same event ids, so nothing is lost or doubled.
What a normalizer cannot map is dead-lettered with its reason, never guessed.
"""
