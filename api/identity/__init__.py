"""Identity: who is calling, and what they have proven.

- ``authentication``: middleware turning a bearer token into the ``Principal``
  (``principal``) on the request; ``guards``: small checks of who may call a route.
- ``sessions``: WeChat and phone logins, sessions, logout, binding a phone.
- ``codes``: SMS one-time codes for logins, signing and sealing.
- ``verification``: real name and face checks of citizens.
- ``staff``: company admins manage their staff; TOTP for seal keepers and regulators.
- ``profile``: the caller's own account; ``subscriptions``: WeChat subscribe consents.
- ``clients``: the HTTP clients of WeChat login, the identity and the face providers.
"""
