"""The lab cloud: an in-memory emulation of the OpenStack subset workbooks use (Keystone v3
tokens, Nova v2.1 servers and volume attachments, Cinder v3 volumes), faithful enough that a
workbook runs unchanged against a real cloud. See /lab for failure injection and state.

    cloud = Cloud(CloudConfig(time_scale=0))        # 0: instantaneous transitions
    with LabCloudServer(cloud) as server:            # server.auth_url: .../identity/v3
        ...
    cloud.close()
"""
from labcloud.api import create_app
from labcloud.config import CloudConfig
from labcloud.identity import Account
from labcloud.machines import MachineError, Machines, NullMachines
from labcloud.model import Cloud
from labcloud.server import LabCloudServer

__all__ = ["Account", "Cloud", "CloudConfig", "LabCloudServer", "MachineError", "Machines",
           "NullMachines", "create_app"]
