"""Stand-ins for the outside world, for the demo and for tests.

`miniapp_mock.app.create_mock_app` builds one small Litestar app (mounted at ``/mock`` in
the main app when mocks are enabled) that plays the SMS gateway (with an inbox where demo
users read their codes), the WeChat server API (jscode2session, with a stand-in for
``wx.login``), a real-name identity provider and a face verification (人脸核身) service
shaped like Tencent Cloud FaceID. It talks to the Wangqian API only over HTTP and keeps
all its state in memory, per app instance.
"""
