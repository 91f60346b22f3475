"""The part of the Keystone end-to-end test about tokens that are not scoped to a project
(issue 16), in one Python process (the `openstack` CLI costs seconds per call here).

Usage:
  keystone_scopes.py setup KEYSTONE_URL ADMIN_PASSWORD USERS_PASSWORD DATA_FILE
      As the project admin, creates a public image with DATA_FILE's bytes and deactivates it;
      then gets real system-scoped (`all`) tokens for sysadmin and sysreader and domain-scoped
      (Default) tokens for domadmin and domreader. Prints `deactivated=ID` and `USER=TOKEN`.
  keystone_scopes.py sdk KEYSTONE_URL USERS_PASSWORD SHARED_ID PRIVATE_ID DEACTIVATED_ID
      Drives glint with openstacksdk under system and domain scope and asserts Glance's
      answers: 404 for an image (and so for its download), 403 for listing and creating,
      403 for the members of a visible image that is not shared.
"""

import sys

import openstack
from keystoneauth1 import session
from keystoneauth1.identity import v3


def token(url, user, password, **scope):
    auth = v3.Password(auth_url=url, username=user, password=password,
                       user_domain_id="default", **scope)
    return session.Session(auth=auth).get_token()


def setup(url, admin_password, password, data_file):
    admin = openstack.connect(auth_url=url, username="admin", password=admin_password,
                              project_name="admin", user_domain_name="Default",
                              project_domain_name="Default", region_name="RegionOne")
    with open(data_file, "rb") as data:
        image = admin.image.create_image(name="public-deactivated", disk_format="raw",
                                         container_format="bare", visibility="public",
                                         data=data)
    admin.image.deactivate_image(image)
    assert admin.image.get_image(image.id).status == "deactivated"
    print(f"deactivated={image.id}")
    for user in ("sysadmin", "sysreader"):
        print(f"{user}={token(url, user, password, system_scope='all')}")
    for user in ("domadmin", "domreader"):
        print(f"{user}={token(url, user, password, domain_name='Default')}")


def expect(status, what, call):
    try:
        call()
    except openstack.exceptions.HttpException as e:
        if e.status_code != status:
            raise AssertionError(f"{what}: expected {status}, got {e.status_code}: {e}")
        return
    raise AssertionError(f"{what}: expected {status}, it succeeded")


def sdk(url, password, shared_id, private_id, deactivated_id):
    def connect(user, **scope):
        return openstack.connect(auth_url=url, username=user, password=password,
                                 user_domain_name="Default", region_name="RegionOne",
                                 **scope)

    for user, scope, admin in (
        ("sysadmin", {"system_scope": "all"}, True),
        ("domreader", {"domain_name": "Default"}, False),
    ):
        conn = connect(user, **scope)
        who = f"{user} ({'system' if 'system_scope' in scope else 'domain'} scope)"
        for image_id in (shared_id, private_id, deactivated_id):
            expect(404, f"{who} shows {image_id}", lambda: conn.image.get_image(image_id))
        expect(403, f"{who} lists images", lambda: list(conn.image.images()))
        # allow_duplicates: straight to POST /v2/images, without a search by name first.
        expect(403, f"{who} creates an image",
               lambda: conn.image.create_image(name="nope", disk_format="raw",
                                               container_format="bare",
                                               allow_duplicates=True))
        expect(404, f"{who} lists a shared image's members",
               lambda: list(conn.image.members(shared_id)))
        # The data layer shows an admin every image, and anybody public ones: not shared, so
        # Glance's "Only shared images have members".
        visible_unshared = private_id if admin else deactivated_id
        expect(403, f"{who} lists a visible unshared image's members",
               lambda: list(conn.image.members(visible_unshared)))
        # openstacksdk fetches the image before its data: that GET is already 404 (the 403
        # of GET /file for a non-admin is checked with curl).
        expect(404, f"{who} downloads the deactivated image",
               lambda: conn.image.download_image(deactivated_id))
    print("openstacksdk: system- and domain-scoped answers as Glance's")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"setup": setup, "sdk": sdk}[command](*args)
