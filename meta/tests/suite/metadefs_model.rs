//! The metadefs model test: random sequences of namespace, property, tag and
//! association operations run against `Meta` and against a plain `BTreeMap` model that restates
//! the rules independently (unique names, protected namespaces refuse deletes, renames move
//! content, bulk tags replace or append, a refused write changes nothing). Every result must
//! agree, and after every step the whole catalog (as exported) must equal the model.

use std::collections::{BTreeMap, BTreeSet};

use meta::metadefs::{
    ContentKind, LoadMode, MetadefError, Namespace, NamespaceDocument, NamespaceVisibility,
    PropertyDefinition, ResourceTypeAssociation,
};
use meta::{Backend, Error, Timestamp};

use super::Engine;
use proptest::prelude::*;

/// Names are drawn from small pools so that operations collide.
const NAMESPACES: [&str; 3] = ["OS::A", "OS::B", "OS::C"];
const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const TYPES: [&str; 2] = ["OS::Glance::Image", "OS::Nova::Flavor"];

/// An operation of the model test.
#[derive(Debug, Clone)]
pub enum Op {
    CreateNamespace {
        ns: usize,
        protected: bool,
    },
    Rename {
        ns: usize,
        to: usize,
    },
    Protect {
        ns: usize,
        protected: bool,
    },
    DeleteNamespace {
        ns: usize,
    },
    CreateProperty {
        ns: usize,
        name: usize,
    },
    DeleteProperty {
        ns: usize,
        name: usize,
    },
    CreateTag {
        ns: usize,
        name: usize,
    },
    CreateTags {
        ns: usize,
        names: Vec<usize>,
        append: bool,
    },
    DeleteTag {
        ns: usize,
        name: usize,
    },
    DeleteTags {
        ns: usize,
    },
    Associate {
        ns: usize,
        rt: usize,
    },
    Deassociate {
        ns: usize,
        rt: usize,
    },
    Load {
        ns: usize,
        mode: u8,
    },
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    let ns = 0..NAMESPACES.len();
    let name = 0..NAMES.len();
    prop_oneof![
        (ns.clone(), any::<bool>())
            .prop_map(|(ns, protected)| Op::CreateNamespace { ns, protected }),
        (ns.clone(), 0..NAMESPACES.len()).prop_map(|(ns, to)| Op::Rename { ns, to }),
        (ns.clone(), any::<bool>()).prop_map(|(ns, protected)| Op::Protect { ns, protected }),
        ns.clone().prop_map(|ns| Op::DeleteNamespace { ns }),
        (ns.clone(), name.clone()).prop_map(|(ns, name)| Op::CreateProperty { ns, name }),
        (ns.clone(), name.clone()).prop_map(|(ns, name)| Op::DeleteProperty { ns, name }),
        (ns.clone(), name.clone()).prop_map(|(ns, name)| Op::CreateTag { ns, name }),
        (
            ns.clone(),
            proptest::collection::vec(name.clone(), 0..4),
            any::<bool>()
        )
            .prop_map(|(ns, names, append)| Op::CreateTags { ns, names, append }),
        (ns.clone(), name).prop_map(|(ns, name)| Op::DeleteTag { ns, name }),
        ns.clone().prop_map(|ns| Op::DeleteTags { ns }),
        (ns.clone(), 0..TYPES.len()).prop_map(|(ns, rt)| Op::Associate { ns, rt }),
        (ns.clone(), 0..TYPES.len()).prop_map(|(ns, rt)| Op::Deassociate { ns, rt }),
        (ns, 0..4u8).prop_map(|(ns, mode)| Op::Load { ns, mode }),
    ]
}

/// What an operation answered, as the model can predict it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    NotFound,
    Duplicate,
    Protected,
}

fn outcome<T>(result: Result<T, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(Error::Metadef(err)) => match err {
            MetadefError::NamespaceNotFound(_)
            | MetadefError::PropertyNotFound { .. }
            | MetadefError::TagNotFound { .. }
            | MetadefError::AssociationNotFound { .. } => Outcome::NotFound,
            MetadefError::DuplicateNamespace(_)
            | MetadefError::DuplicateProperty { .. }
            | MetadefError::DuplicateTag { .. }
            | MetadefError::DuplicateAssociation { .. } => Outcome::Duplicate,
            MetadefError::Protected { .. } => Outcome::Protected,
            other => panic!("unexpected error {other:?}"),
        },
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ModelNs {
    protected: bool,
    properties: BTreeSet<String>,
    /// In creation order.
    tags: Vec<String>,
    /// In creation order.
    types: Vec<String>,
}

type Model = BTreeMap<String, ModelNs>;

fn namespace(name: &str, protected: bool) -> Namespace {
    Namespace {
        namespace: name.to_owned(),
        display_name: None,
        description: None,
        visibility: NamespaceVisibility::Public,
        protected,
        owner: "admin".to_owned(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

fn property() -> PropertyDefinition {
    PropertyDefinition {
        title: "T".to_owned(),
        property_type: "string".to_owned(),
        ..Default::default()
    }
}

fn association(rt: &str) -> ResourceTypeAssociation {
    ResourceTypeAssociation {
        name: rt.to_owned(),
        prefix: None,
        properties_target: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

/// The document a load brings: one property `a`, tag `a`, association with the first type.
fn loaded(ns: &str) -> NamespaceDocument {
    let mut document = NamespaceDocument::new(namespace(ns, false));
    document.properties.insert("a".to_owned(), property());
    document.tags.push(meta::metadefs::MetadefTag {
        name: "a".to_owned(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    });
    document
        .resource_type_associations
        .push(association(TYPES[0]));
    document
}

/// The store's catalog in the model's shape.
fn observe(meta: &dyn Backend) -> Model {
    meta.export_metadefs()
        .unwrap()
        .into_iter()
        .map(|document| {
            (
                document.namespace.namespace.clone(),
                ModelNs {
                    protected: document.namespace.protected,
                    properties: document.properties.keys().cloned().collect(),
                    tags: document.tags.iter().map(|t| t.name.clone()).collect(),
                    types: document
                        .resource_type_associations
                        .iter()
                        .map(|a| a.name.clone())
                        .collect(),
                },
            )
        })
        .collect()
}

/// Applies `op` to the model and says what the store must answer.
fn expect(model: &mut Model, op: &Op) -> Outcome {
    use Outcome::*;
    let ns_name = |ns: &usize| NAMESPACES[*ns].to_owned();
    match op {
        Op::CreateNamespace { ns, protected } => {
            if model.contains_key(&ns_name(ns)) {
                return Duplicate;
            }
            model.insert(
                ns_name(ns),
                ModelNs {
                    protected: *protected,
                    ..Default::default()
                },
            );
            Ok
        }
        Op::Rename { ns, to } => {
            let Some(entry) = model.get(&ns_name(ns)).cloned() else {
                return NotFound;
            };
            if ns != to && model.contains_key(&ns_name(to)) {
                return Duplicate;
            }
            model.remove(&ns_name(ns));
            model.insert(ns_name(to), entry);
            Ok
        }
        Op::Protect { ns, protected } => match model.get_mut(&ns_name(ns)) {
            Some(entry) => {
                entry.protected = *protected;
                Ok
            }
            None => NotFound,
        },
        Op::DeleteNamespace { ns } => match model.get(&ns_name(ns)) {
            None => NotFound,
            Some(entry) if entry.protected => Protected,
            Some(_) => {
                model.remove(&ns_name(ns));
                Ok
            }
        },
        Op::CreateProperty { ns, name } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if entry.properties.insert(NAMES[*name].to_owned()) {
                Ok
            } else {
                Duplicate
            }
        }
        Op::DeleteProperty { ns, name } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if !entry.properties.contains(NAMES[*name]) {
                NotFound
            } else if entry.protected {
                Protected
            } else {
                entry.properties.remove(NAMES[*name]);
                Ok
            }
        }
        Op::CreateTag { ns, name } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if entry.tags.iter().any(|t| t == NAMES[*name]) {
                return Duplicate;
            }
            entry.tags.push(NAMES[*name].to_owned());
            Ok
        }
        Op::CreateTags { ns, names, append } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            let mut tags = if *append {
                entry.tags.clone()
            } else {
                Vec::new()
            };
            for name in names {
                if tags.iter().any(|t| t == NAMES[*name]) {
                    return Duplicate;
                }
                tags.push(NAMES[*name].to_owned());
            }
            entry.tags = tags;
            Ok
        }
        Op::DeleteTag { ns, name } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if !entry.tags.iter().any(|t| t == NAMES[*name]) {
                NotFound
            } else if entry.protected {
                Protected
            } else {
                entry.tags.retain(|t| t != NAMES[*name]);
                Ok
            }
        }
        Op::DeleteTags { ns } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if entry.protected {
                return Protected;
            }
            entry.tags.clear();
            Ok
        }
        Op::Associate { ns, rt } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if entry.types.iter().any(|t| t == TYPES[*rt]) {
                return Duplicate;
            }
            entry.types.push(TYPES[*rt].to_owned());
            Ok
        }
        Op::Deassociate { ns, rt } => {
            let Some(entry) = model.get_mut(&ns_name(ns)) else {
                return NotFound;
            };
            if !entry.types.iter().any(|t| t == TYPES[*rt]) {
                NotFound
            } else if entry.protected {
                Protected
            } else {
                entry.types.retain(|t| t != TYPES[*rt]);
                Ok
            }
        }
        Op::Load { ns, mode } => {
            let fresh = ModelNs {
                protected: false,
                properties: ["a".to_owned()].into(),
                tags: vec!["a".to_owned()],
                types: vec![TYPES[0].to_owned()],
            };
            match (model.get_mut(&ns_name(ns)), mode) {
                (None, _) | (Some(_), 3) => {
                    model.insert(ns_name(ns), fresh);
                }
                (Some(_), 0) => {}
                (Some(entry), merge) => {
                    if *merge == 2 {
                        entry.protected = false;
                    }
                    entry.properties.insert("a".to_owned());
                    if !entry.tags.iter().any(|t| t == "a") {
                        entry.tags.push("a".to_owned());
                    }
                    if !entry.types.iter().any(|t| t == TYPES[0]) {
                        entry.types.push(TYPES[0].to_owned());
                    }
                }
            }
            Ok
        }
    }
}

fn apply(meta: &dyn Backend, op: &Op) -> Outcome {
    let ns = |ns: &usize| NAMESPACES[*ns];
    match op {
        Op::CreateNamespace { ns: n, protected } => outcome(
            meta.create_metadef_namespace(&NamespaceDocument::new(namespace(ns(n), *protected))),
        ),
        Op::Rename { ns: n, to } => {
            let Some(mut current) = meta.metadef_namespace(ns(n)).unwrap() else {
                return outcome(meta.update_metadef_namespace(ns(n), &namespace(ns(to), false)));
            };
            current.namespace = ns(to).to_owned();
            outcome(meta.update_metadef_namespace(ns(n), &current))
        }
        Op::Protect { ns: n, protected } => {
            let Some(mut current) = meta.metadef_namespace(ns(n)).unwrap() else {
                return outcome(
                    meta.update_metadef_namespace(ns(n), &namespace(ns(n), *protected)),
                );
            };
            current.protected = *protected;
            outcome(meta.update_metadef_namespace(ns(n), &current))
        }
        Op::DeleteNamespace { ns: n } => outcome(meta.delete_metadef_namespace(ns(n))),
        Op::CreateProperty { ns: n, name } => {
            outcome(meta.create_metadef_property(ns(n), NAMES[*name], &property()))
        }
        Op::DeleteProperty { ns: n, name } => {
            outcome(meta.delete_metadef_property(ns(n), NAMES[*name]))
        }
        Op::CreateTag { ns: n, name } => outcome(meta.create_metadef_tag(ns(n), NAMES[*name])),
        Op::CreateTags {
            ns: n,
            names,
            append,
        } => {
            let names: Vec<String> = names.iter().map(|i| NAMES[*i].to_owned()).collect();
            outcome(meta.create_metadef_tags(ns(n), &names, *append))
        }
        Op::DeleteTag { ns: n, name } => outcome(meta.delete_metadef_tag(ns(n), NAMES[*name])),
        Op::DeleteTags { ns: n } => outcome(meta.delete_metadef_content(ns(n), ContentKind::Tags)),
        Op::Associate { ns: n, rt } => {
            outcome(meta.associate_metadef_resource_type(ns(n), &association(TYPES[*rt])))
        }
        Op::Deassociate { ns: n, rt } => {
            outcome(meta.deassociate_metadef_resource_type(ns(n), TYPES[*rt]))
        }
        Op::Load { ns: n, mode } => {
            let mode = match mode {
                0 => LoadMode::SkipExisting,
                1 => LoadMode::Merge,
                2 => LoadMode::MergePreferNew,
                _ => LoadMode::Overwrite,
            };
            outcome(meta.load_metadefs(&[loaded(ns(n))], mode))
        }
    }
}

/// Runs `ops` on a fresh database of engine `E` and on the model.
pub fn run<E: Engine>(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let db = E::create();
    let meta = db.backend();
    let mut model = Model::new();
    for (step, op) in ops.iter().enumerate() {
        let expected = expect(&mut model, op);
        let got = apply(meta, op);
        prop_assert_eq!(&got, &expected, "step {}: {:?}", step, op);
        prop_assert_eq!(
            &observe(meta),
            &model,
            "state after step {}: {:?}",
            step,
            op
        );
    }
    Ok(())
}
