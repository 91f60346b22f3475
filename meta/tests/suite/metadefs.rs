//! The metadefs catalog ([`meta::metadefs::Metadefs`]): each write, its refusals (which must
//! write nothing), listing order and paging, the load modes, export, and reopening.

use std::collections::BTreeMap;

use meta::metadefs::*;
use meta::{Error, Timestamp};

use super::Engine;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(seconds * 1_000_000)
}

fn namespace(name: &str, seconds: i64) -> Namespace {
    Namespace {
        namespace: name.to_owned(),
        display_name: Some(format!("{name} display")),
        description: None,
        visibility: NamespaceVisibility::Public,
        protected: false,
        owner: "admin".to_owned(),
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

fn property(title: &str) -> PropertyDefinition {
    PropertyDefinition {
        title: title.to_owned(),
        property_type: "string".to_owned(),
        ..Default::default()
    }
}

fn object(name: &str, seconds: i64) -> MetadefObject {
    MetadefObject {
        name: name.to_owned(),
        description: Some("an object".to_owned()),
        required: vec!["a".to_owned()],
        properties: [("a".to_owned(), property("A"))].into(),
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

fn tag(name: &str, seconds: i64) -> MetadefTag {
    MetadefTag {
        name: name.to_owned(),
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

fn association(name: &str, prefix: Option<&str>, seconds: i64) -> ResourceTypeAssociation {
    ResourceTypeAssociation {
        name: name.to_owned(),
        prefix: prefix.map(str::to_owned),
        properties_target: None,
        created_at: at(seconds),
        updated_at: at(seconds),
    }
}

/// A namespace with one of everything.
fn document(name: &str, seconds: i64) -> NamespaceDocument {
    let mut document = NamespaceDocument::new(namespace(name, seconds));
    document.resource_type_associations =
        vec![association("OS::Glance::Image", Some("hw_"), seconds)];
    document.properties = [("p1".to_owned(), property("P1"))].into();
    document.objects = vec![object("o1", seconds)];
    document.tags = vec![tag("t1", seconds)];
    document
}

fn metadef(err: Error) -> MetadefError {
    match err {
        Error::Metadef(err) => err,
        other => panic!("expected a metadef error, got {other:?}"),
    }
}

fn query() -> NamespaceQuery {
    NamespaceQuery {
        viewer: NamespaceViewer::Everything,
        visibility: None,
        resource_types: None,
        sort_key: NamespaceSortKey::CreatedAt,
        descending: true,
        marker: None,
        limit: 100,
    }
}

fn names(page: &[(Namespace, Vec<ResourceTypeAssociation>)]) -> Vec<&str> {
    page.iter().map(|(ns, _)| ns.namespace.as_str()).collect()
}

pub fn creates_a_namespace_with_its_content_and_reads_it_back<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let doc = document("OS::Test", 10);
    meta.create_metadef_namespace(&doc).unwrap();
    assert_eq!(
        meta.metadef_namespace_document("OS::Test").unwrap(),
        Some(doc.clone())
    );
    assert_eq!(
        meta.metadef_namespace("OS::Test").unwrap(),
        Some(doc.namespace.clone())
    );
    let types = meta.metadef_resource_types().unwrap();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].name, "OS::Glance::Image");
    assert!(!types[0].protected, "created through the API, not seeded");
    assert_eq!(meta.metadef_namespace("other").unwrap(), None);
}

pub fn duplicate_and_invalid_namespaces_write_nothing<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create_metadef_namespace(&document("n", 1)).unwrap();
    let err = meta
        .create_metadef_namespace(&document("n", 2))
        .unwrap_err();
    assert_eq!(metadef(err), MetadefError::DuplicateNamespace("n".into()));

    // An invalid property deep inside: nothing of the namespace is written.
    let mut bad = document("m", 3);
    bad.objects[0].properties.insert(
        "x".into(),
        PropertyDefinition {
            title: "X".into(),
            property_type: "strin".into(),
            ..Default::default()
        },
    );
    assert!(matches!(
        metadef(meta.create_metadef_namespace(&bad).unwrap_err()),
        MetadefError::Invalid(_)
    ));
    let mut long = document("m", 3);
    long.tags.push(tag(&"t".repeat(81), 3));
    assert!(matches!(
        metadef(meta.create_metadef_namespace(&long).unwrap_err()),
        MetadefError::Invalid(_)
    ));
    assert_eq!(meta.metadef_namespace("m").unwrap(), None);
    assert_eq!(meta.metadef_resource_types().unwrap().len(), 1);
}

pub fn protected_namespaces_refuse_every_delete<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut doc = document("p", 1);
    doc.namespace.protected = true;
    meta.create_metadef_namespace(&doc).unwrap();
    let refused = |result: Result<(), Error>| match metadef(result.unwrap_err()) {
        MetadefError::Protected { record, .. } => record,
        other => panic!("expected protected, got {other:?}"),
    };
    assert_eq!(
        refused(meta.delete_metadef_namespace("p")),
        ProtectedRecord::Namespace
    );
    assert_eq!(
        refused(meta.delete_metadef_object("p", "o1")),
        ProtectedRecord::Object("o1".into())
    );
    assert_eq!(
        refused(meta.delete_metadef_property("p", "p1")),
        ProtectedRecord::Property("p1".into())
    );
    assert_eq!(
        refused(meta.delete_metadef_tag("p", "t1")),
        ProtectedRecord::Tag("t1".into())
    );
    assert_eq!(
        refused(meta.deassociate_metadef_resource_type("p", "OS::Glance::Image")),
        ProtectedRecord::Association("OS::Glance::Image".into())
    );
    for kind in [
        ContentKind::Objects,
        ContentKind::Properties,
        ContentKind::Tags,
    ] {
        assert_eq!(
            refused(meta.delete_metadef_content("p", kind)),
            ProtectedRecord::Namespace
        );
    }
    assert_eq!(
        meta.metadef_namespace_document("p").unwrap(),
        Some(doc.clone())
    );
    assert_eq!(
        MetadefError::Protected {
            namespace: "p".into(),
            record: ProtectedRecord::Namespace
        }
        .to_string(),
        "Metadata definition namespace p is protected and cannot be deleted."
    );

    // Unprotect it, and the deletes go through; the resource type stays.
    let mut open = doc.namespace.clone();
    open.protected = false;
    meta.update_metadef_namespace("p", &open).unwrap();
    meta.delete_metadef_content("p", ContentKind::Objects)
        .unwrap();
    assert!(meta.metadef_objects("p").unwrap().is_empty());
    meta.delete_metadef_namespace("p").unwrap();
    assert_eq!(meta.metadef_namespace("p").unwrap(), None);
    assert_eq!(meta.metadef_resource_types().unwrap().len(), 1);
    assert!(matches!(
        metadef(meta.metadef_properties("p").unwrap_err()),
        MetadefError::NamespaceNotFound(_)
    ));
}

pub fn renaming_a_namespace_moves_its_content<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create_metadef_namespace(&document("old", 1)).unwrap();
    meta.create_metadef_namespace(&document("taken", 2))
        .unwrap();
    let mut renamed = namespace("taken", 1);
    assert_eq!(
        metadef(meta.update_metadef_namespace("old", &renamed).unwrap_err()),
        MetadefError::DuplicateNamespace("taken".into())
    );
    renamed.namespace = "new".into();
    renamed.created_at = at(99);
    let stored = meta.update_metadef_namespace("old", &renamed).unwrap();
    assert_eq!(stored.created_at, at(1), "created_at never changes");
    assert!(stored.updated_at > at(1));
    assert_eq!(meta.metadef_namespace("old").unwrap(), None);
    let moved = meta.metadef_namespace_document("new").unwrap().unwrap();
    let original = document("old", 1);
    assert_eq!(moved.objects, original.objects);
    assert_eq!(moved.properties, original.properties);
    assert_eq!(moved.tags, original.tags);
    assert_eq!(
        moved.resource_type_associations,
        original.resource_type_associations
    );
}

pub fn objects_and_properties_are_created_renamed_and_deleted<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create_metadef_namespace(&NamespaceDocument::new(namespace("n", 1)))
        .unwrap();
    let created = meta.create_metadef_object("n", &object("a", 0)).unwrap();
    assert!(created.created_at > at(1));
    meta.create_metadef_object("n", &object("b", 0)).unwrap();
    assert_eq!(
        metadef(
            meta.create_metadef_object("n", &object("a", 0))
                .unwrap_err()
        ),
        MetadefError::DuplicateObject {
            namespace: "n".into(),
            name: "a".into()
        }
    );
    let names: Vec<String> = meta
        .metadef_objects("n")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["a", "b"], "creation order");
    assert!(meta
        .update_metadef_object("n", "a", &object("b", 0))
        .is_err());
    let renamed = meta
        .update_metadef_object("n", "a", &object("c", 0))
        .unwrap();
    assert_eq!(renamed.created_at, created.created_at);
    assert!(matches!(
        metadef(meta.metadef_object("n", "a").unwrap_err()),
        MetadefError::ObjectNotFound { .. }
    ));
    meta.delete_metadef_object("n", "c").unwrap();
    assert!(meta.delete_metadef_object("n", "c").is_err());

    meta.create_metadef_property("n", "p", &property("P"))
        .unwrap();
    meta.create_metadef_property("n", "q", &property("Q"))
        .unwrap();
    assert!(matches!(
        metadef(
            meta.create_metadef_property("n", "p", &property("P"))
                .unwrap_err()
        ),
        MetadefError::DuplicateProperty { .. }
    ));
    assert!(matches!(
        metadef(
            meta.update_metadef_property("n", "p", "q", &property("P2"))
                .unwrap_err()
        ),
        MetadefError::DuplicateProperty { .. }
    ));
    meta.update_metadef_property("n", "p", "r", &property("R"))
        .unwrap();
    let all = meta.metadef_properties("n").unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["q", "r"]);
    assert_eq!(meta.metadef_property("n", "r").unwrap().title, "R");
    meta.delete_metadef_content("n", ContentKind::Properties)
        .unwrap();
    assert!(meta.metadef_properties("n").unwrap().is_empty());
    assert!(matches!(
        metadef(
            meta.create_metadef_property("missing", "p", &property("P"))
                .unwrap_err()
        ),
        MetadefError::NamespaceNotFound(_)
    ));
}

pub fn tags_replace_append_rename_and_page<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create_metadef_namespace(&NamespaceDocument::new(namespace("n", 1)))
        .unwrap();
    meta.create_metadef_tag("n", "old").unwrap();
    let names = |tags: Vec<MetadefTag>| tags.into_iter().map(|t| t.name).collect::<Vec<_>>();
    let all = TagQuery {
        sort_key: TagSortKey::CreatedAt,
        descending: false,
        marker: None,
        limit: None,
    };

    // Replacing: the old tag goes.
    let created = meta
        .create_metadef_tags("n", &["b".into(), "a".into(), "c".into()], false)
        .unwrap();
    assert_eq!(names(created), ["b", "a", "c"]);
    assert_eq!(
        names(meta.metadef_tags("n", &all).unwrap()),
        ["b", "a", "c"]
    );

    // A duplicate in the request, or (appending) with an existing tag, writes nothing.
    for (request, append) in [(vec!["x", "x"], false), (vec!["y", "a"], true)] {
        let request: Vec<String> = request.into_iter().map(str::to_owned).collect();
        assert!(matches!(
            metadef(meta.create_metadef_tags("n", &request, append).unwrap_err()),
            MetadefError::DuplicateTag { .. }
        ));
        assert_eq!(
            names(meta.metadef_tags("n", &all).unwrap()),
            ["b", "a", "c"]
        );
    }
    meta.create_metadef_tags("n", &["d".into()], true).unwrap();

    let by_name = |descending, marker: Option<&str>, limit| TagQuery {
        sort_key: TagSortKey::Name,
        descending,
        marker: marker.map(str::to_owned),
        limit,
    };
    assert_eq!(
        names(meta.metadef_tags("n", &by_name(false, None, None)).unwrap()),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        names(
            meta.metadef_tags("n", &by_name(false, Some("b"), Some(1)))
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            meta.metadef_tags("n", &by_name(true, Some("c"), None))
                .unwrap()
        ),
        ["b", "a"]
    );
    assert!(matches!(
        metadef(
            meta.metadef_tags("n", &by_name(true, Some("zz"), None))
                .unwrap_err()
        ),
        MetadefError::TagNotFound { .. }
    ));

    assert!(meta.rename_metadef_tag("n", "a", "b").is_err());
    let renamed = meta.rename_metadef_tag("n", "a", "z").unwrap();
    assert_eq!(renamed.name, "z");
    assert_eq!(
        meta.metadef_tag("n", "z").unwrap().created_at,
        renamed.created_at
    );
    meta.delete_metadef_tag("n", "z").unwrap();
    assert!(matches!(
        metadef(meta.metadef_tag("n", "z").unwrap_err()),
        MetadefError::TagNotFound { .. }
    ));
    meta.delete_metadef_content("n", ContentKind::Tags).unwrap();
    assert!(meta.metadef_tags("n", &all).unwrap().is_empty());
}

pub fn associations_create_resource_types_that_outlive_them<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create_metadef_namespace(&NamespaceDocument::new(namespace("n", 1)))
        .unwrap();
    let stored = meta
        .associate_metadef_resource_type("n", &association("OS::Nova::Flavor", Some("hw:"), 0))
        .unwrap();
    assert_eq!(stored.prefix.as_deref(), Some("hw:"));
    assert!(matches!(
        metadef(
            meta.associate_metadef_resource_type("n", &association("OS::Nova::Flavor", None, 0))
                .unwrap_err()
        ),
        MetadefError::DuplicateAssociation { .. }
    ));
    assert_eq!(meta.metadef_associations("n").unwrap(), vec![stored]);
    meta.deassociate_metadef_resource_type("n", "OS::Nova::Flavor")
        .unwrap();
    assert!(matches!(
        metadef(
            meta.deassociate_metadef_resource_type("n", "OS::Nova::Flavor")
                .unwrap_err()
        ),
        MetadefError::AssociationNotFound { .. }
    ));
    assert!(meta.metadef_associations("n").unwrap().is_empty());
    assert_eq!(meta.metadef_resource_types().unwrap().len(), 1);
}

pub fn listing_filters_sorts_and_pages<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for (name, seconds, public, owner, rt) in [
        ("c", 1, true, "admin", Some("OS::Glance::Image")),
        ("a", 2, false, "proj-a", Some("OS::Nova::Flavor")),
        ("b", 3, false, "proj-b", None),
        ("d", 3, true, "proj-b", Some("OS::Nova::Flavor")),
    ] {
        let mut doc = NamespaceDocument::new(namespace(name, seconds));
        doc.namespace.owner = owner.into();
        if !public {
            doc.namespace.visibility = NamespaceVisibility::Private;
        }
        if let Some(rt) = rt {
            doc.resource_type_associations = vec![association(rt, None, seconds)];
        }
        meta.create_metadef_namespace(&doc).unwrap();
    }
    // Newest first; d and b share a created_at, and d was created later.
    assert_eq!(
        names(&meta.list_metadef_namespaces(&query()).unwrap()),
        ["d", "b", "a", "c"]
    );
    let viewer = NamespaceQuery {
        viewer: NamespaceViewer::Project(Some("proj-a".into())),
        ..query()
    };
    assert_eq!(
        names(&meta.list_metadef_namespaces(&viewer).unwrap()),
        ["d", "a", "c"]
    );
    let anonymous = NamespaceQuery {
        viewer: NamespaceViewer::Project(None),
        ..query()
    };
    assert_eq!(
        names(&meta.list_metadef_namespaces(&anonymous).unwrap()),
        ["d", "c"]
    );
    let private = NamespaceQuery {
        visibility: Some(NamespaceVisibility::Private),
        ..query()
    };
    assert_eq!(
        names(&meta.list_metadef_namespaces(&private).unwrap()),
        ["b", "a"]
    );
    let flavors = NamespaceQuery {
        resource_types: Some(vec!["OS::Nova::Flavor".into(), "OS::Cinder::Volume".into()]),
        ..query()
    };
    let page = meta.list_metadef_namespaces(&flavors).unwrap();
    assert_eq!(names(&page), ["d", "a"]);
    assert_eq!(page[0].1[0].name, "OS::Nova::Flavor");
    let by_name = NamespaceQuery {
        sort_key: NamespaceSortKey::Namespace,
        descending: false,
        limit: 2,
        ..query()
    };
    assert_eq!(
        names(&meta.list_metadef_namespaces(&by_name).unwrap()),
        ["a", "b"]
    );
    let next = NamespaceQuery {
        marker: Some("b".into()),
        ..by_name.clone()
    };
    assert_eq!(
        names(&meta.list_metadef_namespaces(&next).unwrap()),
        ["c", "d"]
    );
    // A marker the viewer cannot see is not found.
    let hidden = NamespaceQuery {
        marker: Some("b".into()),
        ..viewer
    };
    assert_eq!(
        metadef(meta.list_metadef_namespaces(&hidden).unwrap_err()),
        MetadefError::NamespaceNotFound("b".into())
    );
}

pub fn load_modes_follow_glance_manage<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let first = document("n", 1);
    let report = meta
        .load_metadefs(std::slice::from_ref(&first), LoadMode::SkipExisting)
        .unwrap();
    assert_eq!(report.created, ["n"]);
    assert!(
        meta.metadef_resource_types().unwrap()[0].protected,
        "seeded by a load"
    );
    assert_eq!(
        meta.metadef_namespace_document("n").unwrap(),
        Some(first.clone())
    );

    // The file changed: a new property, a changed one, a changed namespace description.
    let mut second = first.clone();
    second.namespace.description = Some("new".into());
    second.properties.insert("p1".into(), property("P1 new"));
    second.properties.insert("p2".into(), property("P2"));

    let report = meta
        .load_metadefs(std::slice::from_ref(&second), LoadMode::SkipExisting)
        .unwrap();
    assert_eq!(report.unchanged, ["n"]);
    assert_eq!(
        meta.metadef_namespace_document("n").unwrap(),
        Some(first.clone())
    );

    let report = meta
        .load_metadefs(std::slice::from_ref(&second), LoadMode::Merge)
        .unwrap();
    assert_eq!(report.updated, ["n"]);
    let merged = meta.metadef_namespace_document("n").unwrap().unwrap();
    assert_eq!(
        merged.namespace, first.namespace,
        "merge keeps existing fields"
    );
    assert_eq!(merged.properties["p1"].title, "P1");
    assert_eq!(merged.properties["p2"].title, "P2");
    let report = meta
        .load_metadefs(std::slice::from_ref(&second), LoadMode::Merge)
        .unwrap();
    assert_eq!(report.unchanged, ["n"], "a second merge changes nothing");

    let report = meta
        .load_metadefs(std::slice::from_ref(&second), LoadMode::MergePreferNew)
        .unwrap();
    assert_eq!(report.updated, ["n"]);
    let preferred = meta.metadef_namespace_document("n").unwrap().unwrap();
    assert_eq!(preferred.namespace.description.as_deref(), Some("new"));
    assert_eq!(preferred.namespace.created_at, at(1));
    assert_eq!(preferred.properties["p1"].title, "P1 new");
    let again = meta
        .load_metadefs(std::slice::from_ref(&second), LoadMode::MergePreferNew)
        .unwrap();
    assert_eq!(again.unchanged, ["n"]);
    assert_eq!(
        meta.metadef_namespace_document("n").unwrap(),
        Some(preferred)
    );

    // Overwrite: exactly the file, even for a protected namespace; extra content is gone.
    meta.create_metadef_tag("n", "extra").unwrap();
    let mut protected = meta.metadef_namespace("n").unwrap().unwrap();
    protected.protected = true;
    meta.update_metadef_namespace("n", &protected).unwrap();
    let report = meta
        .load_metadefs(std::slice::from_ref(&first), LoadMode::Overwrite)
        .unwrap();
    assert_eq!(report.created, ["n"]);
    assert_eq!(meta.metadef_namespace_document("n").unwrap(), Some(first));
}

pub fn a_failing_load_writes_nothing<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let good = document("good", 1);
    let mut bad = document("bad", 2);
    bad.properties.insert("".into(), property("empty name"));
    assert!(meta
        .load_metadefs(&[good.clone(), bad], LoadMode::SkipExisting)
        .is_err());
    assert_eq!(meta.metadef_namespace("good").unwrap(), None);
    assert!(meta.metadef_resource_types().unwrap().is_empty());
    // The same namespace twice in one load is refused as well.
    assert!(matches!(
        metadef(
            meta.load_metadefs(&[good.clone(), good], LoadMode::Merge)
                .unwrap_err()
        ),
        MetadefError::DuplicateNamespace(_)
    ));
}

pub fn export_lists_everything_oldest_first<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let docs = vec![document("z", 1), document("a", 2)];
    meta.load_metadefs(&docs, LoadMode::SkipExisting).unwrap();
    let exported = meta.export_metadefs().unwrap();
    let types = meta.metadef_resource_types().unwrap();
    assert_eq!(types.len(), 1);
    for (exported, doc) in exported.iter().zip(&docs) {
        assert_eq!(
            exported.resource_types, types,
            "the types its associations name"
        );
        let mut without = exported.clone();
        without.resource_types.clear();
        assert_eq!(&without, doc);
    }
    assert_eq!(exported.len(), 2);

    // Loaded elsewhere, the export brings its resource types' own times and flags along.
    let other_db = E::create();
    let other = other_db.backend();
    let mut seeded = exported.clone();
    seeded[0].resource_types[0].created_at = at(-5);
    seeded[0].resource_types[0].protected = false;
    other
        .load_metadefs(&seeded, LoadMode::SkipExisting)
        .unwrap();
    let copied = other.metadef_resource_types().unwrap();
    assert_eq!(copied[0].created_at, at(-5));
    assert!(!copied[0].protected);
    let properties: BTreeMap<String, PropertyDefinition> = meta.metadef_properties("a").unwrap();
    assert_eq!(properties, docs[1].properties);
}

pub fn metadefs_survive_reopening<E: Engine>() {
    let mut db = E::create();
    let doc = document("kept", 5);
    db.backend().create_metadef_namespace(&doc).unwrap();
    db.reopen();
    assert_eq!(
        db.backend().metadef_namespace_document("kept").unwrap(),
        Some(doc)
    );
}
