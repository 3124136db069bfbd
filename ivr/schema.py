"""Every table of the product, registered on ``Base.metadata`` by importing its models.

Alembic's environment and the migration test import this one module, so a feature that adds
tables adds its models module here once.
"""

from __future__ import annotations

from callbacks import models as callback_models
from callbacks.followups import models as followup_models
from crm_sync import models as crm_models
from crm_sync import sync_models
from ivr.agents import models as agent_models
from ivr.auth import tokens as api_tokens
from ivr.calls import models as call_models
from ivr.core.db import Base
from ivr.reports import models as report_models
from ivr.retention import models as retention_models
from ivr.surveys import models as survey_models
from ivr.transfers import models as transfer_models

REGISTERED = (crm_models, sync_models, agent_models, call_models, callback_models,
              api_tokens, transfer_models, survey_models, followup_models,
              retention_models, report_models)

metadata = Base.metadata
