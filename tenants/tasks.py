from celery import shared_task

from tenants.emails import member_invite_email


@shared_task(acks_late=True)
def member_invite_send(membership_id: int) -> bool:
    """Email a newly created member the link to set a password. Safe to run twice: the link is
    re-issued, and an already-activated account gets nothing."""
    return member_invite_email(membership_id=membership_id)
