"""x402 payments: the gateway's paywall, its configuration per environment, and the client."""

from claw402.payments.config import PaymentConfig, PaymentConfigError
from claw402.payments.env import paywall_from_env
from claw402.payments.paywall import Paywall

__all__ = ["PaymentConfig", "PaymentConfigError", "Paywall", "paywall_from_env"]
