from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_PASSWORD = "demo-password"  # a demo login shown on the login page, not a secret


class Command(BaseCommand):
    help = "Create the demo users learner1..learner20 and a staff user 'admin'."

    def handle(self, *args, **options):
        User = get_user_model()
        for i in range(1, 21):
            user, created = User.objects.get_or_create(username=f"learner{i}")
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True})
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()
        self.stdout.write("demo users ready")
