"""Every table of every context: importing this module registers them all on one
``MetaData``. For tools that compare the models with the migrations (tests, Alembic's
autogenerate); the service itself never needs it, and ``api.db`` does not import it."""

from api.contracts import models as contract_models  # noqa: F401
from api.core import idempotency, versions  # noqa: F401
from api.db.base import Base
from api.escrow import models as escrow_models  # noqa: F401
from api.identity import models as identity_models  # noqa: F401
from api.outbox import models as outbox_models  # noqa: F401
from api.register import models as register_models  # noqa: F401

metadata = Base.metadata
