//! Members in the redb engine: stored twice in one transaction, `image_members` keyed
//! `(image, project)` for the members API and `members_by_project` keyed `(project, image)` for
//! "images shared with me" in listings, which must not scan every image. Reads, and the member
//! writes of [`Writer`].

use redb::{ReadTransaction, ReadableTable};

use super::record::{member_status_code, member_status_from_code};
use super::schema::{MEMBERS, MEMBERS_BY_PROJECT};
use super::write::Writer;
use super::StorageResultExt;
use crate::error::{Error, Result};
use crate::members::{Member, MemberStatus};
use crate::rules;
use crate::types::{ImageId, Timestamp};

/// `(status code, created_at µs, updated_at µs)`.
pub(super) type MemberValue = (u8, i64, i64);

fn status_from(code: u8) -> Result<MemberStatus> {
    member_status_from_code(code)
        .ok_or_else(|| Error::Corrupt(format!("member status code {code}")))
}

fn member_from(
    id: ImageId,
    project: &str,
    (code, created, updated): MemberValue,
) -> Result<Member> {
    Ok(Member {
        image_id: id,
        member_id: project.to_owned(),
        status: status_from(code)?,
        created_at: Timestamp::from_unix_micros(created),
        updated_at: Timestamp::from_unix_micros(updated),
    })
}

fn read_member(
    table: &impl ReadableTable<(u128, &'static str), MemberValue>,
    id: ImageId,
    project: &str,
) -> Result<Option<Member>> {
    match table.get((id.to_key(), project)).storage()? {
        Some(guard) => Ok(Some(member_from(id, project, guard.value())?)),
        None => Ok(None),
    }
}

fn read_members(
    table: &impl ReadableTable<(u128, &'static str), MemberValue>,
    id: ImageId,
) -> Result<Vec<Member>> {
    let key = id.to_key();
    let mut out = Vec::new();
    // "" sorts before every project id, so the range starts at the image's first member.
    for entry in table.range((key, "")..).storage()? {
        let (k, v) = entry.storage()?;
        let (image, project) = k.value();
        if image != key {
            break;
        }
        out.push(member_from(id, project, v.value())?);
    }
    Ok(out)
}

pub(super) fn get_member(
    txn: &ReadTransaction,
    id: ImageId,
    project: &str,
) -> Result<Option<Member>> {
    read_member(&txn.open_table(MEMBERS).storage()?, id, project)
}

pub(super) fn list_members(txn: &ReadTransaction, id: ImageId) -> Result<Vec<Member>> {
    read_members(&txn.open_table(MEMBERS).storage()?, id)
}

/// One range of the by-project index, whatever the number of images.
pub(super) fn images_shared_with(
    txn: &ReadTransaction,
    project: &str,
) -> Result<Vec<(ImageId, MemberStatus)>> {
    let table = txn.open_table(MEMBERS_BY_PROJECT).storage()?;
    let mut out = Vec::new();
    for entry in table
        .range((project, u128::MIN)..=(project, u128::MAX))
        .storage()?
    {
        let (key, value) = entry.storage()?;
        out.push((
            ImageId::from_key(key.value().1),
            status_from(value.value())?,
        ));
    }
    Ok(out)
}

impl Writer<'_> {
    pub(super) fn add_member(
        &mut self,
        id: ImageId,
        project: &str,
        max_members: Option<u64>,
    ) -> Result<Member> {
        rules::check_shared(&self.require(id)?)?;
        if self.member(id, project)?.is_some() {
            return Err(Error::DuplicateMember {
                image: id,
                member: project.to_owned(),
            });
        }
        if let Some(maximum) = max_members {
            let attempted = self.members_of(id)?.len() as u64 + 1;
            if attempted > maximum {
                return Err(Error::TooManyMembers {
                    image: id,
                    attempted,
                    maximum,
                });
            }
        }
        let member = Member {
            image_id: id,
            member_id: project.to_owned(),
            status: MemberStatus::Pending,
            created_at: self.now,
            updated_at: self.now,
        };
        self.put_member(&member)?;
        Ok(member)
    }

    pub(super) fn update_member(
        &mut self,
        id: ImageId,
        project: &str,
        status: MemberStatus,
    ) -> Result<Member> {
        rules::check_shared(&self.require(id)?)?;
        let mut member = self.require_member(id, project)?;
        member.status = status;
        member.updated_at = self.now;
        self.put_member(&member)?;
        Ok(member)
    }

    pub(super) fn delete_member(&mut self, id: ImageId, project: &str) -> Result<()> {
        rules::check_shared(&self.require(id)?)?;
        self.require_member(id, project)?;
        self.remove_member(id, project)
    }

    fn member(&self, id: ImageId, project: &str) -> Result<Option<Member>> {
        read_member(&self.members, id, project)
    }

    fn require_member(&self, id: ImageId, project: &str) -> Result<Member> {
        self.member(id, project)?
            .ok_or_else(|| Error::MemberNotFound {
                image: id,
                member: project.to_owned(),
            })
    }

    pub(super) fn members_of(&self, id: ImageId) -> Result<Vec<Member>> {
        read_members(&self.members, id)
    }

    pub(super) fn put_member(&mut self, member: &Member) -> Result<()> {
        let key = member.image_id.to_key();
        let code = member_status_code(member.status);
        self.members
            .insert(
                (key, member.member_id.as_str()),
                (
                    code,
                    member.created_at.as_unix_micros(),
                    member.updated_at.as_unix_micros(),
                ),
            )
            .storage()?;
        self.members_by_project
            .insert((member.member_id.as_str(), key), code)
            .storage()?;
        Ok(())
    }

    pub(super) fn remove_member(&mut self, id: ImageId, project: &str) -> Result<()> {
        let key = id.to_key();
        self.members.remove((key, project)).storage()?;
        self.members_by_project.remove((project, key)).storage()?;
        Ok(())
    }
}
