"""Receipts: the installation's public key, without a token, so that anyone handed a
receipt (a sponsor, an ethics board) can check it (`antal receipt verify --url`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from antal.api import schemas as S
from antal.api.routes.deps import state_of
from antal.privacy.receipts import public_key_json

__all__ = ["router"]

router = APIRouter(tags=["receipts"])


@router.get("/v1/receipts/public-key")
def public_key(request: Request) -> S.PublicKeyOut:
    """The public key that checks this installation's receipts (no token needed)."""
    return S.PublicKeyOut.model_validate(public_key_json(state_of(request).signer.public))
