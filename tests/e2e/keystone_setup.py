"""Creates what the Keystone end-to-end test needs, in one process (the `openstack` CLI costs
seconds per call here): the `service` role, projects, users with their roles (on projects, on
the system, on the Default domain), and the image service with glint's endpoints in the
catalog. With REGION_TWO_URL, a second region, RegionTwo, whose Image service is another
glint (for glance-download).

Usage: keystone_setup.py KEYSTONE_URL ADMIN_PASSWORD GLINT_URL USERS_PASSWORD [REGION_TWO_URL]
"""

import sys

from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client


def main():
    keystone_url, admin_password, glint_url, password = sys.argv[1:5]
    region_two_url = sys.argv[5] if len(sys.argv) > 5 else None
    auth = v3.Password(
        auth_url=keystone_url,
        username="admin",
        password=admin_password,
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )
    ks = client.Client(session=session.Session(auth=auth))

    roles = {r.name: r for r in ks.roles.list()}
    for name in ("admin", "member", "reader", "service"):
        if name not in roles:
            roles[name] = ks.roles.create(name)

    projects = {}
    for name in ("service", "proj-a", "proj-b"):
        projects[name] = ks.projects.create(name, "default")

    # glance: glint's own service user (validates tokens), as Glance's deployment has it.
    grants = {
        "glance": ("service", ["admin", "service"]),
        "alice": ("proj-a", ["member"]),
        "rita": ("proj-a", ["reader"]),
        "bob": ("proj-b", ["member"]),
    }
    for user, (project, user_roles) in grants.items():
        u = ks.users.create(user, domain="default", password=password)
        for role in user_roles:
            ks.roles.grant(roles[role], user=u, project=projects[project])

    # Users whose roles are not on a project: on the whole system (an operator's
    # `--os-system-scope all`) and on the Default domain.
    for user, role, scope in (
        ("sysadmin", "admin", {"system": "all"}),
        ("sysreader", "reader", {"system": "all"}),
        ("domadmin", "admin", {"domain": "default"}),
        ("domreader", "reader", {"domain": "default"}),
    ):
        u = ks.users.create(user, domain="default", password=password)
        ks.roles.grant(roles[role], user=u, **scope)

    service = ks.services.create("glance", "image", description="glint")
    for interface in ("public", "internal", "admin"):
        ks.endpoints.create(service, glint_url, interface=interface, region="RegionOne")
    if region_two_url:
        ks.regions.create(id="RegionTwo")
        for interface in ("public", "internal", "admin"):
            ks.endpoints.create(service, region_two_url, interface=interface, region="RegionTwo")

    # Project ids, for the test to name members.
    for name, project in projects.items():
        print(f"{name}={project.id}")


if __name__ == "__main__":
    main()
