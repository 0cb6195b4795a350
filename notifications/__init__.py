"""Notifications: how Wangqian reaches people outside the app.

Message templates in Chinese (zh-CN), delivery channels (SMS through a signed HTTP
gateway, later WeChat subscribe messages) and delivery with retries. Channels are small
classes behind Protocols so the API layer can swap a real gateway for the mock one or an
in-memory recorder in tests. This package knows no HTTP routes and no database, and
imports nothing else of ours.
"""
