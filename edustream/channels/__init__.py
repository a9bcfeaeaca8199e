"""Payment-channel callbacks: verify what Alipay, WeChat Pay and UnionPay send.

Modules:

- ``alipay``, ``wechat``, ``unionpay``: one per channel. Each verifies the
  channel's real wire format into a ``NormalisedCallback`` and, for tests and
  the demo, signs callbacks the way the channel does;
- ``normalised``: the channel-neutral callback and its Avro record form;
- ``keys``: the test key set and the merchant-side ``VerifierConfig``;
- ``money``, ``times``, ``forms``, ``signatures``: the shared parts (yuan
  strings, channel timestamps, form bodies, SHA256withRSA).

Every refusal is a ``SignatureError`` or ``PoisonError`` whose ``reason`` is
a short code (``bad_signature``, ``unknown_serial``, ``unknown_cert``,
``stale_timestamp``, ``duplicate_field``, ``bad_charset``, ``malformed``,
``bad_amount``, ``decrypt_failed``, ``wrong_merchant``) and whose message
never repeats a value from the callback.
"""
