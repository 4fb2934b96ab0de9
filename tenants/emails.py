from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tenants.models import Membership


def member_invite_email(*, membership_id: int) -> bool:
    membership = Membership.objects.select_related("user", "tenant").filter(pk=membership_id).first()
    if membership is None or membership.user.has_usable_password() or not membership.user.email:
        return False
    user = membership.user
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    context = {"membership": membership, "link": f"{settings.METERLINE_BASE_URL.rstrip('/')}{path}"}
    send_mail(
        # a header holds one line: a name written with a line break reads on one
        subject=f"You have been added to {' '.join(membership.tenant.name.split())} on Meterline",
        message=render_to_string("emails/member_invite.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
    return True
