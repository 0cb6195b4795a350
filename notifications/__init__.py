"""Notifications: how Wangqian reaches people outside the app.

``templates`` holds the messages in Chinese (zh-CN), each with its SMS template key and,
where WeChat allows it, its subscribe-message template; ``sms`` the SMS channel over the
gateway's signed HTTP protocol; ``wechat`` WeChat subscribe messages; ``delivery`` the
dispatcher that sends on WeChat when the person allowed it and by SMS otherwise, with a
retry policy. Channels are small classes behind Protocols, so the API can swap a real
gateway for the mock or an in-memory recorder in tests. No HTTP routes, no database, and
nothing else of ours is imported here.
"""
